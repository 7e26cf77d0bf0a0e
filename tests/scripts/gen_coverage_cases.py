#!/usr/bin/env python3
"""Write the rules the coverage work (``python -m anonvma.difftest --coverage``) made the random
scripts reach, as curated scripts for every release.

Run from the repo root; it rewrites tests/scripts/cov_*.jsonl. Record every
release's output with ``python tests/recordings.py record --linux RELEASE``, oldest first.
"""

from typing import Any, Optional

from gen_generation_cases import write_cases

P = 4096
GIB = 1 << 30
U64 = (1 << 64) - 1
FILE_PAGES = (64 << 20) // P
Ops = list[dict[str, Any]]
MAPS: Ops = [{"op": "maps"}]


def mmap(page: int, pages: int, prot: str = "rw", **extra: Any) -> Ops:
    return [{"op": "mmap", "addr": page * P, "len": pages * P, "prot": prot, **extra}]


def op(kind: str, page: int, pages: int, **extra: Any) -> Ops:
    return [{"op": kind, "addr": page * P, "len": pages * P, **extra}]


def touch(page: int, write: bool = True) -> Ops:
    return [{"op": "touch", "addr": page * P, "write": write}]


def mremap(page: int, pages: int, new_len: int, flags: list[str], dst: Optional[int] = None,
           **extra: Any) -> Ops:
    out: dict[str, Any] = {"op": "mremap", "addr": page * P, "len": pages * P, "new_len": new_len,
                           "flags": flags, **extra}
    if dst is not None:
        out["new_addr"] = dst * P
    return [out]


def reset() -> Ops:
    return [{"op": "munmap", "addr": 0, "len": 1 << 33}]


def max_map_count() -> Ops:
    """Each op at, just below and just above the map count it needs: mmap fails once the count
    passes the limit, a split once it reaches it (of two splits the first stays), mremap_to 5
    and move_vma 3 below it; madvise and the prctl say EAGAIN where the others say ENOMEM."""
    out: Ops = []
    for i in range(4):  # four VMAs
        out += mmap(2 * i, 1, "rw" if i % 2 == 0 else "r")
    for n in (2, 3, 4, 5):
        out += mmap(100 + 2 * n, 1, "x", max_map_count=n) + MAPS
    out += reset() + mmap(0, 3)
    for kind, extra in (("mprotect", {"prot": "r"}), ("name", {"name": "x"}),
                        ("madvise", {"advice": "dontfork"}), ("mlock", {"onfault": True})):
        for n in (1, 2, 3):
            out += op(kind, 1, 1, max_map_count=n, **extra) + MAPS
            out += reset() + mmap(0, 3)
    for n in (1, 2):
        out += op("munmap", 1, 1, max_map_count=n) + MAPS
        out += reset() + mmap(0, 3)
    for n in (0, 1):  # MAP_FIXED into the middle: the unmap's split is refused (6.1: ENOMEM)
        out += mmap(1, 1, "r", max_map_count=n) + MAPS
        out += reset() + mmap(0, 3)
    for n in (5, 6, 7):  # mremap_to: map_count + 2 >= max - 3
        out += mremap(0, 1, P, ["maymove", "fixed", "dontunmap"], 20, max_map_count=n) + MAPS
        out += reset() + mmap(0, 3)
    for n in (3, 4, 5):  # move_vma: map_count >= max - 3 (a move the kernel places, failing anyway)
        out += mremap(0, 1, GIB, ["maymove"], max_map_count=n)
    return out


def readonly_descriptor() -> Ops:
    """A file mapped through a descriptor opened read-only: shared, it may not be writable
    (EACCES) and never becomes so (no VM_MAYWRITE); private, it may. Each such mmap has its own
    struct file, so it never merges with another mapping of the file."""
    return (mmap(0, 2, "rw", share="shared", file="f0", readonly=True)
            + mmap(0, 2, "r", share="shared", file="f0", readonly=True)
            + mmap(2, 2, "r", share="shared", file="f0", pgoff=2, readonly=True)
            + mmap(4, 2, "r", share="shared", file="f0", pgoff=4)
            + mmap(8, 2, "r", file="f0", pgoff=4, readonly=True) + MAPS
            + op("mprotect", 0, 1, prot="rw") + op("mprotect", 0, 1, prot="rx")
            + op("mprotect", 4, 1, prot="rw") + op("mprotect", 8, 1, prot="rw")
            + touch(1, False) + touch(1) + touch(8)
            + mremap(0, 0, P, ["maymove", "fixed"], 16)
            + [{"op": "fork"}, {"op": "maps", "pid": 1}] + MAPS)


def shmem_commit() -> Ops:
    """A shared anonymous mapping charges its size when its shmem file is made (unless
    MAP_NORESERVE); past the commit limit that fails after the old range is gone: a hole."""
    return (mmap(0, 16) + touch(2) + [
        {"op": "mmap", "addr": P, "len": 2 * GIB, "prot": "rw", "share": "shared"}] + MAPS
        + mmap(0, 16) + [{"op": "mmap", "addr": P, "len": 2 * GIB, "prot": "r", "share": "shared",
                          "noreserve": True}] + MAPS
        + [{"op": "mmap", "addr": 0, "len": 7 * GIB, "prot": "r", "share": "shared"}] + MAPS)


def dontunmap_onto_own_vma() -> Ops:
    """Part of a VMA moved with MREMAP_DONTUNMAP onto another part of the same VMA: unfaulted,
    6.1's copy_vma merges the copy back into its source; faulted, it cannot."""
    out: Ops = []
    for faulted in (False, True):
        for named in (None, "pool"):
            out += reset() + mmap(0, 6)
            if named:
                out += op("name", 0, 6, name=named)
            if faulted:
                out += touch(0)
            out += mremap(0, 2, 2 * P, ["maymove", "fixed", "dontunmap"], 4) + MAPS
            out += mremap(4, 1, P, ["maymove", "fixed", "dontunmap"], 2) + MAPS
            out += mremap(0, 1, P, ["maymove", "fixed"], 5) + MAPS
    return out


def placed_moves() -> Ops:
    """MREMAP_MAYMOVE alone, where the move would be placed by the kernel, failing first: past
    the commit limit (after a gap is found) or past every gap (none is found). (A placed move
    that succeeds lands outside the arena: scripts must not make one.)"""
    return (mmap(0, 3) + mremap(0, 1, GIB, ["maymove"]) + mremap(0, 1, 400 * GIB, ["maymove"])
            + mremap(0, 3, 2 * GIB, ["maymove"]) + MAPS
            + mmap(3, 1, "r") + mremap(0, 3, 4 * P, []) + mremap(0, 3, 3 * GIB, ["maymove"]) + MAPS)


def past_eof() -> Ops:
    """A file mapping that ends past its file: population stops at the end of the file
    (MAP_POPULATE ignores it, mlock says ENOMEM, mprotect and mremap of a locked VMA ignore it)."""
    far = 256
    out: Ops = []
    for share in ({}, {"share": "shared"}):
        out += mmap(far, 3, "r", file="f0", pgoff=FILE_PAGES - 1, populate=True, **share)
        out += mmap(far, 3, "r", file="f0", pgoff=FILE_PAGES - 1, populate=True, **share)
        out += op("mlock", far, 3) + MAPS
        out += op("mprotect", far, 3, prot="rw") + MAPS
        out += op("munlock", far, 3) + op("mlock", far, 3)
        out += mremap(far, 3, 5 * P, []) + MAPS
        out += op("munmap", far, 8)
    out += mmap(far, 2, "r", file="f1", pgoff=FILE_PAGES) + op("mlock", far, 2)
    out += op("mprotect", far, 2, prot="rw") + MAPS
    return out


def shmem_grown_past_its_file() -> Ops:
    """mremap grows a shared anonymous mapping, not its shmem file: population past the file's
    end fails (mlock ENOMEM), and a touch there would be SIGBUS (the runners say EFAULT)."""
    return (mmap(0, 2, "rw", share="shared") + mremap(0, 2, 4 * P, []) + op("mlock", 0, 4) + MAPS
            + op("munlock", 0, 4) + op("mlock", 0, 2) + mremap(0, 4, 6 * P, []) + MAPS
            + touch(1) + touch(2) + touch(3, False)
            + mmap(16, 4, "r", share="shared", populate=True) + mremap(18, 0, 4 * P, ["maymove", "fixed"], 32)
            + op("mlock", 32, 4) + op("mprotect", 32, 4, prot="rw") + MAPS
            + mmap(64, 2, "rw", file="f0", pgoff=FILE_PAGES - 1) + touch(64) + touch(65, False)
            + mmap(96, 2, "rw", share="shared", file="f1", pgoff=FILE_PAGES - 1) + touch(96) + touch(97)
            + MAPS)


def mremap_old_len_zero() -> Ops:
    """mremap with old_len 0 duplicates a shared mapping (EINVAL for a private one); to its own
    address the ranges do not overlap, so the fixed move unmaps its source first: EFAULT."""
    return (mmap(0, 2, "rw", share="shared") + mremap(0, 0, P, ["maymove", "fixed"], 4) + MAPS
            + mremap(0, 0, P, ["maymove", "fixed"], 0) + MAPS
            + mmap(8, 2) + mremap(8, 0, P, ["maymove", "fixed"], 12) + MAPS)


def huge_lengths() -> Ops:
    """Lengths that wrap past 2**64 or pass TASK_SIZE: each fails before it changes anything."""
    out = mmap(0, 4)
    for length in (U64, U64 - P + 2, 1 << 48):
        out.append({"op": "mmap", "addr": 8 * P, "len": length, "prot": "rw"})
        out.append({"op": "munmap", "addr": 0, "len": length})
        out.append({"op": "mprotect", "addr": 0, "len": length, "prot": "r"})
        out.append({"op": "mlock", "addr": 0, "len": length if length != 1 << 48 else U64 - (1 << 30)})
        out.append({"op": "munlock", "addr": 0, "len": length if length != 1 << 48 else U64 - (1 << 30)})
        out.append({"op": "mremap", "addr": 0, "len": P, "new_len": length, "flags": []})
        out.append({"op": "mremap", "addr": 0, "len": P, "new_len": length, "flags": ["maymove", "fixed"],
                    "new_addr": 16 * P})
    out.append({"op": "madvise", "addr": 0, "len": U64 - (1 << 30), "advice": "dontneed"})
    out.append({"op": "name", "addr": 0, "len": U64 - (1 << 30), "name": "x"})
    out.append({"op": "mmap", "addr": 0, "len": P, "prot": "r", "file": "f0", "pgoff": 1 << 51})
    return out + MAPS


CASES = {
    "cov_max_map_count": max_map_count(),
    "cov_readonly_descriptor": readonly_descriptor(),
    "cov_shmem_commit_leaves_hole": shmem_commit(),
    "cov_dontunmap_onto_own_vma": dontunmap_onto_own_vma(),
    "cov_placed_moves_fail": placed_moves(),
    "cov_file_past_eof": past_eof(),
    "cov_mremap_old_len_zero": mremap_old_len_zero(),
    "cov_shmem_grown_past_its_file": shmem_grown_past_its_file(),
    "cov_huge_lengths": huge_lengths(),
}


def main() -> None:
    write_cases(CASES)


if __name__ == "__main__":
    main()
