"""Benchmark: read and group /proc/PID/smaps of a process with 64,000 VMAs.

Times, in one run and on the same child process:

- ``plain``: ``open(/proc/PID/smaps, "rb").read()``, the floor any reader pays (the kernel walks
  every VMA's page tables to produce ~50 MB of text);
- ``anonvma``: :func:`anonvma.procmaps.read_pid` + :func:`anonvma.procmaps.group` by name;
- ``psutil``: ``psutil.Process(pid).memory_maps(grouped=True)``, if psutil is installed
  (``pip install psutil``, the ``compare`` extra).

The child maps 1-page private anonymous VMAs side by side at 0x4000000000 (MAP_FIXED), with
alternating protections so they cannot merge, and dirties the writable ones. The default
vm.max_map_count is 65530, so 64,000 plus the interpreter's own ~100 fit.

Usage: ``python benchmarks/smaps_read.py [--vmas 64000] [--repeat 5] [--out results/smaps_read.json]``
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, List, Optional

CHILD = r"""
import ctypes, sys
from anonvma.live import syscalls as s
n, base, page = int(sys.argv[1]), 0x4000000000, s.PAGE_SIZE
rw, ro = s.PROT_READ | s.PROT_WRITE, s.PROT_READ
flags = s.MAP_PRIVATE | s.MAP_ANONYMOUS | s.MAP_FIXED_NOREPLACE
for i in range(n):
    addr = s.mmap(base + i * page, page, rw if i % 2 == 0 else ro, flags)
    if i % 2 == 0:
        ctypes.memset(addr, 1, 1)
sys.stdout.write("ready\n"); sys.stdout.flush()
sys.stdin.read()
"""


def spawn(vmas: int) -> subprocess.Popen[str]:
    """Start the child and wait until its mappings exist."""
    child = subprocess.Popen([sys.executable, "-c", CHILD, str(vmas)], stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    assert child.stdout is not None
    if child.stdout.readline().strip() != "ready":
        child.kill()
        raise SystemExit(f"child failed to map {vmas} VMAs (exit {child.wait()})")
    return child


def timed(fn: Callable[[], object], repeat: int) -> List[float]:
    """Wall times in ms of ``repeat`` calls, after one warm-up call."""
    fn()
    out = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        out.append((time.perf_counter() - t0) * 1000)
    return out


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--vmas", type=int, default=64000)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--out", default="results/smaps_read.json")
    args = ap.parse_args(argv)

    from anonvma import procmaps

    child = spawn(args.vmas)
    try:
        pid = child.pid
        path = f"/proc/{pid}/smaps"

        def plain() -> bytes:
            with open(path, "rb", buffering=0) as f:
                return f.readall()

        def ours() -> object:
            return procmaps.group(procmaps.read_pid(pid).vmas, by="name")

        snap = procmaps.read_pid(pid)
        runs: Dict[str, List[float]] = {
            "plain_read": timed(plain, args.repeat),
            "anonvma_read_group": timed(ours, args.repeat),
        }
        try:
            import psutil
        except ImportError:
            psutil = None
        if psutil is not None:
            proc = psutil.Process(pid)
            runs["psutil_memory_maps_grouped"] = timed(
                lambda: proc.memory_maps(grouped=True), args.repeat)
        size = len(plain())
    finally:
        child.stdin.close()  # type: ignore[union-attr]
        child.wait()

    medians = {k: statistics.median(v) for k, v in runs.items()}
    base = medians["plain_read"]
    result = {
        "benchmark": "smaps_read",
        "vmas_in_child": args.vmas,
        "vmas_parsed": len(snap.vmas),
        "smaps_bytes": size,
        "repeat": args.repeat,
        "python": platform.python_version(),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "ms_median": medians,
        "ms_all": runs,
        "ratio_to_plain_read": {k: v / base for k, v in medians.items()},
    }
    print(f"{len(snap.vmas)} VMAs, smaps {size / 1e6:.1f} MB, median of {args.repeat}:")
    for k, v in medians.items():
        print(f"  {k:28s} {v:9.1f} ms  {v / base:5.2f}x plain read")
    if "psutil_memory_maps_grouped" in medians:
        ratio = medians["psutil_memory_maps_grouped"] / medians["anonvma_read_group"]
        print(f"  psutil / anonvma: {ratio:.2f}x")
    os.makedirs(os.path.dirname(args.out) or ".", exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(result, f, indent=2)
        f.write("\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
