"""Run inside the oracle kernel: name adjacent memory differently, ask `anonvma show --merges`
what naming alone keeps apart, then make the names equal and count what the kernel merged.

Three regions of 4 pages, each between PROT_NONE guards, pages 0-1 named "a" and 2-3 "b":
``unfaulted`` (never written), ``together`` (written whole, then named: the split halves share
one anon_vma), ``apart`` (each half faulted while VM_DONTCOPY kept them incompatible, so each
has an anon_vma of its own, then the flags made equal again). Prints one JSON object.
"""

from __future__ import annotations

import ctypes
import json
import mmap
import os
import subprocess
import sys

from anonvma.live import syscalls

PAGE = mmap.PAGESIZE
MAP_FIXED = 0x10
MADV_DONTFORK, MADV_DOFORK = 10, 11
PROT_NONE = 0  # Python's mmap module has no PROT_NONE
RW = mmap.PROT_READ | mmap.PROT_WRITE
PRIVATE = mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS


def region() -> int:
    """4 read-write pages between two PROT_NONE guard pages (which never merge with them)."""
    guard = syscalls.mmap(0, 6 * PAGE, PROT_NONE, PRIVATE)
    return syscalls.mmap(guard + PAGE, 4 * PAGE, RW, PRIVATE | MAP_FIXED)


def records(start: int, end: int) -> int:
    """The maps records inside [start, end)."""
    with open("/proc/self/maps") as f:
        spans = [line.split()[0].split("-") for line in f]
    return sum(1 for lo, hi in spans if int(lo, 16) >= start and int(hi, 16) <= end)


def maps_lines() -> int:
    with open("/proc/self/maps") as f:
        return sum(1 for _ in f)


def main() -> None:
    bases = {"unfaulted": region(), "together": region(), "apart": region()}
    ctypes.memset(bases["together"], 1, 4 * PAGE)
    apart = bases["apart"]
    syscalls.madvise(apart + 2 * PAGE, 2 * PAGE, MADV_DONTFORK)
    ctypes.memset(apart, 1, 4 * PAGE)
    syscalls.madvise(apart + 2 * PAGE, 2 * PAGE, MADV_DOFORK)
    for base in bases.values():
        syscalls.prctl_set_vma_anon_name(base, 2 * PAGE, b"a")
        syscalls.prctl_set_vma_anon_name(base + 2 * PAGE, 2 * PAGE, b"b")
    before = {k: records(b, b + 4 * PAGE) for k, b in bases.items()}
    show = subprocess.run([sys.executable, "-m", "anonvma", "show", str(os.getpid()), "--merges", "--json"],
                          capture_output=True, text=True, check=False)
    lines_before = maps_lines()
    for base in bases.values():
        syscalls.prctl_set_vma_anon_name(base + 2 * PAGE, 2 * PAGE, b"a")
    after = {k: records(b, b + 4 * PAGE) for k, b in bases.items()}
    print(json.dumps({"bases": bases, "before": before, "after": after, "rc": show.returncode,
                      "stderr": show.stderr, "show": json.loads(show.stdout or "null"),
                      "maps_lines": [lines_before, maps_lines()], "release": os.uname().release}))


if __name__ == "__main__":
    main()
