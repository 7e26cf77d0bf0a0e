"""Benchmark: what each model syscall costs at 1,000 and 64,000 named VMAs, beside the host kernel.

The model's address space holds N VMAs of 3 pages at 0x4000000000, side by side, alternating
``rw`` and ``r`` so neighbours never merge, each named with a 79-character name. Every VMA is
mapped ``rw`` and every other one then made ``r``, so that all carry VM_ACCOUNT on 6.1 (which
keeps the charge on mprotect) and none on the host's kernel (6.7+ gives it back for unfaulted
memory): made ``r``, the middle VMA then joins both neighbours on every kernel, as the merge
step says (checked before timing). The host kernel gets the same layout (unnamed: it cannot
name) at 0x5000000000 in this very process, through ctypes. Every timed step is a pair that
leaves the address space as it found it, on the VMA in the middle, so all repeats see the
same N; model and kernel alternate batch by batch in one run. Figures are what a user gets:
default interpreter settings, garbage collector on. Per call, microseconds: the median over
batches of 50 calls.

Steps the host kernel cannot run (naming) are set beside the kernel's mprotect pair, the
pair the issue compares them with. fork + exit is timed on the kernel side in a separate
worker process holding as many VMAs (anonvma.bench.vs_host.HostForker): forking this process
itself would leave its pages copy-on-write and charge the model's next steps with the
faults.

Usage: ``python benchmarks/model_ops.py [--sizes 1000,64000] [--rounds 40] [--out results/model_ops.json]``
"""

from __future__ import annotations

import argparse
import ctypes
import json
import mmap as _mmap
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Callable, Dict, List, Optional, Tuple

from anonvma.bench.vs_host import HostForker
from anonvma.model import Mm

BASE = 0x4000000000
HOST_BASE = 0x5000000000
PAGE = 4096
NAME = "n" * 79
MAP_FIXED_NOREPLACE = 0x100000
BATCH = 50

Step = Callable[[], object]


def build(count: int, strategy: str) -> Mm:
    """An Mm with ``count`` named 3-page VMAs that cannot merge with each other.

    max_map_count is raised by a few so that a step's temporary split fits.
    """
    mm = Mm(strategy, max_map_count=count + 8)
    for i in range(count):
        addr = BASE + 3 * PAGE * i
        mm.mmap(addr, 3 * PAGE, "rw")
        mm.set_anon_name(addr, 3 * PAGE, NAME)
        if i % 2:
            mm.mprotect(addr, 3 * PAGE, "r")
    assert mm.map_count == count
    return mm


class HostLayout:
    """The same layout in this process on the running kernel (unnamed), through ctypes."""

    def __init__(self, count: int) -> None:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.mmap.restype = ctypes.c_void_p
        libc.mmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int, ctypes.c_int,
                              ctypes.c_int, ctypes.c_long]
        for name in ("mprotect", "munmap", "madvise"):
            getattr(libc, name).argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int][
                :3 if name != "munmap" else 2]
        libc.mremap.restype = ctypes.c_void_p
        libc.mremap.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_size_t, ctypes.c_int,
                                ctypes.c_void_p]
        self.libc, self.count = libc, count
        self._forker: Optional[HostForker] = None
        flags = _mmap.MAP_PRIVATE | _mmap.MAP_ANONYMOUS | MAP_FIXED_NOREPLACE
        for i in range(count):
            addr = HOST_BASE + 3 * PAGE * i
            if libc.mmap(addr, 3 * PAGE, 3, flags, -1, 0) != addr or (
                    i % 2 and libc.mprotect(addr, 3 * PAGE, 1)):
                self.close(i)
                raise OSError(ctypes.get_errno(), f"host layout: mmap of VMA {i} failed "
                                                  f"(vm.max_map_count too low for {count}?)")

    def fork_and_reap(self) -> None:
        """fork + reap in a separate process holding as many VMAs (started on first use)."""
        if self._forker is None:
            self._forker = HostForker(self.count)
        self._forker.fork()

    def close(self, upto: Optional[int] = None) -> None:
        self.libc.munmap(HOST_BASE, 3 * PAGE * (self.count if upto is None else upto))
        if self._forker is not None:
            self._forker.close()
            self._forker = None


def middle_of(count: int) -> int:
    """The index of the VMA the steps work on: an rw VMA between two r ones."""
    return count // 2 // 2 * 2


def host_map_count() -> int:
    with open("/proc/self/maps", "rb") as f:
        return sum(1 for _ in f)


def check_merge3(mm: Mm, count: int, host: HostLayout) -> None:
    """The merge step merges, on the model and on the host: the middle VMA made ``r`` leaves
    two VMAs fewer, made ``rw`` again as many as before.

    :raises AssertionError: a layout on which the step would time something else.
    """
    middle = middle_of(count)
    mid, hmid = BASE + 3 * PAGE * middle, HOST_BASE + 3 * PAGE * middle
    before, hbefore = mm.map_count, host_map_count()
    mm.mprotect(mid, 3 * PAGE, "r")
    host.libc.mprotect(hmid, 3 * PAGE, 1)
    merged, hmerged = mm.map_count, host_map_count()
    mm.mprotect(mid, 3 * PAGE, "rw")
    host.libc.mprotect(hmid, 3 * PAGE, 3)
    assert (merged, mm.map_count) == (before - 2, before), "the model did not merge 3 and split back"
    assert (hmerged, host_map_count()) == (hbefore - 2, hbefore), \
        "the host kernel did not merge 3 and split back"


def steps(mm: Mm, count: int, host: HostLayout) -> Dict[str, Tuple[Step, Optional[Step], str]]:
    """Named do-and-undo pairs on the middle VMA: (model step, kernel step, what the kernel does)."""
    middle = middle_of(count)
    mid, inner = BASE + 3 * PAGE * middle, BASE + 3 * PAGE * middle + PAGE
    far = BASE + 3 * PAGE * (count + 10)
    hmid = HOST_BASE + 3 * PAGE * middle
    hinner, hfar = hmid + PAGE, HOST_BASE + 3 * PAGE * (count + 10)
    libc = host.libc
    anon = _mmap.MAP_PRIVATE | _mmap.MAP_ANONYMOUS | _mmap.MAP_FIXED if hasattr(_mmap, "MAP_FIXED") \
        else _mmap.MAP_PRIVATE | _mmap.MAP_ANONYMOUS | 0x10

    def m_rename() -> None:  # split into three, then merge back
        mm.set_anon_name(inner, PAGE, "other")
        mm.set_anon_name(inner, PAGE, NAME)

    def m_mprotect_interior() -> None:
        mm.mprotect(inner, PAGE, "r")
        mm.mprotect(inner, PAGE, "rw")

    def k_mprotect_interior() -> None:
        libc.mprotect(hinner, PAGE, 1)
        libc.mprotect(hinner, PAGE, 3)

    def m_mprotect_merge3() -> None:  # the middle rw VMA joins its two r neighbours, then splits off
        mm.mprotect(mid, 3 * PAGE, "r")
        mm.mprotect(mid, 3 * PAGE, "rw")

    def k_mprotect_merge3() -> None:
        libc.mprotect(hmid, 3 * PAGE, 1)
        libc.mprotect(hmid, 3 * PAGE, 3)

    def m_munmap_mmap() -> None:
        mm.munmap(inner, PAGE)
        mm.mmap(inner, PAGE, "rw")
        mm.set_anon_name(inner, PAGE, NAME)

    def k_munmap_mmap() -> None:
        libc.munmap(hinner, PAGE)
        libc.mmap(hinner, PAGE, 3, anon, -1, 0)

    def m_fault() -> None:
        mm.fault(inner, write=True)
        mm.madvise(inner, PAGE, "dontneed")

    def k_fault() -> None:
        ctypes.memset(hinner, 0x5A, 1)
        libc.madvise(hinner, PAGE, _mmap.MADV_DONTNEED)

    def m_mremap() -> None:
        mm.mremap(mid, 3 * PAGE, 3 * PAGE, ("maymove", "fixed"), far)
        mm.mremap(far, 3 * PAGE, 3 * PAGE, ("maymove", "fixed"), mid)

    def k_mremap() -> None:
        libc.mremap(hmid, 3 * PAGE, 3 * PAGE, 3, hfar)
        libc.mremap(hfar, 3 * PAGE, 3 * PAGE, 3, hmid)

    def m_fork() -> None:
        mm.fork().exit()

    def k_fork() -> None:
        host.fork_and_reap()

    def k_maps() -> None:
        with open("/proc/self/maps", "rb") as f:
            f.read()

    return {
        "set_anon_name interior + back (split 3, merge)": (m_rename, k_mprotect_merge3,
                                                            "mprotect merge 3 + split back"),
        "mprotect merge 3 + split back": (m_mprotect_merge3, k_mprotect_merge3, "same"),
        "mprotect interior + back": (m_mprotect_interior, k_mprotect_interior, "same"),
        "munmap + mmap (+ name) one page": (m_munmap_mmap, k_munmap_mmap, "munmap + mmap, unnamed"),
        "write fault + madvise dontneed": (m_fault, k_fault, "same"),
        "mremap away + back": (m_mremap, k_mremap, "same"),
        "fork + exit (O(n))": (m_fork, k_fork, "fork + _exit + waitpid of a process as large"),
        "maps() text (O(n))": (mm.maps, k_maps, "read /proc/self/maps"),
    }


def batch_us(fn: Step, calls: int) -> float:
    t0 = time.perf_counter()
    for _ in range(calls):
        fn()
    return (time.perf_counter() - t0) / calls * 1e6


def measure(model: Step, kernel: Optional[Step], rounds: int, calls: int) -> Tuple[float, Optional[float]]:
    """Median per-call microseconds of the model step and the kernel step, batch by batch
    alternating in one run."""
    model()
    if kernel is not None:
        kernel()
    ms: List[float] = []
    ks: List[float] = []
    for _ in range(rounds):
        ms.append(batch_us(model, calls))
        if kernel is not None:
            ks.append(batch_us(kernel, calls))
    return statistics.median(ms), (statistics.median(ks) if ks else None)


def main(argv: Optional[List[str]] = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sizes", default="1000,64000")
    ap.add_argument("--strategy", default="refcount", choices=("refcount", "strdup"))
    ap.add_argument("--rounds", type=int, default=40, help="batches per step (default 40)")
    ap.add_argument("--out", default="results/model_ops.json")
    args = ap.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",")]

    table: Dict[int, Dict[str, Dict[str, Optional[float]]]] = {}
    for count in sizes:
        mm = build(count, args.strategy)
        host = HostLayout(count)
        try:
            table[count] = {}
            check_merge3(mm, count, host)
            for name, (model, kernel, _) in steps(mm, count, host).items():
                heavy = "O(n)" in name
                m, k = measure(model, kernel, max(3, args.rounds // 8) if heavy else args.rounds,
                               1 if heavy else BATCH)
                table[count][name] = {"model_us": m, "kernel_us": k}
            assert mm.map_count == count, "a step did not leave the address space as it found it"
        finally:
            host.close()
        mm.exit()

    tiny = HostLayout(2)
    labels = {name: what for name, (_, _, what) in steps(build(2, args.strategy), 2, tiny).items()}
    tiny.close()
    print(f"model ({args.strategy}) and host kernel {platform.release()}, microseconds per call "
          "(median of batches; default settings, GC on)")
    print(f"{'step':48} " + " ".join(f"{'model ' + format(n, ','):>14} {'kernel':>9} {'ratio':>6}"
                                       for n in sizes) + "   kernel step")
    for name in table[sizes[-1]]:
        row = f"{name:48} "
        for n in sizes:
            cell = table[n][name]
            m, k = cell["model_us"], cell["kernel_us"]
            row += f"{m:14.1f} {k:9.1f} {m / k:6.2f} " if k else f"{m:14.1f} {'-':>9} {'-':>6} "
        print(row + "  " + labels[name])
    result = {
        "benchmark": "model_ops",
        "strategy": args.strategy,
        "settings": "default (garbage collector on, nothing frozen)",
        "python": platform.python_version(),
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "batch_calls": BATCH,
        "us_median": {str(k): v for k, v in table.items()},
        "kernel_step": labels,
    }
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
