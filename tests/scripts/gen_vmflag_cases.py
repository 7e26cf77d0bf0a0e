#!/usr/bin/env python3
"""Write the VM-flag cases as ops scripts: mlock/munlock, madvise read-ahead hints, MAP_NORESERVE
and MAP_POPULATE splitting and merging named VMAs; most cases unnamed, same-named, differently named.

Run from the repo root; it rewrites tests/scripts/vmflags_*.jsonl. Record every
release's output with ``python tests/recordings.py record --linux RELEASE``, oldest first.
"""

import json
from pathlib import Path
from typing import Any, Optional

P = 4096
Ops = list[dict[str, Any]]
MAPS: Ops = [{"op": "maps"}]
VARIANTS = {"unnamed": (None, None), "samename": ("a", "a"), "diffnames": ("a", "b")}


def mm(page: int, pages: int, name: Optional[str], prot: str = "rw", **extra: Any) -> Ops:
    out: Ops = [{"op": "mmap", "addr": page * P, "len": pages * P, "prot": prot, **extra}]
    if name is not None:
        out.append({"op": "name", "addr": page * P, "len": pages * P, "name": name})
    return out


def op(kind: str, page: int, pages: int, **extra: Any) -> Ops:
    return [{"op": kind, "addr": page * P, "len": pages * P, **extra}]


def lock(page: int, pages: int, onfault: bool = False) -> Ops:
    return op("mlock", page, pages, **({"onfault": True} if onfault else {}))


def unlock(page: int, pages: int) -> Ops:
    return op("munlock", page, pages)


def prot(page: int, pages: int, p: str) -> Ops:
    return op("mprotect", page, pages, prot=p)


def advise(page: int, pages: int, advice: str) -> Ops:
    return op("madvise", page, pages, advice=advice)


def move(src: int, pages: int, dst: int, *extra: str) -> Ops:
    return [{"op": "mremap", "addr": src * P, "len": pages * P, "new_len": pages * P,
             "flags": ["maymove", "fixed", *extra], "new_addr": dst * P}]


def named_cases(n1: Optional[str], n2: Optional[str]) -> dict[str, Ops]:
    """Cases whose outcome depends on the names: two neighbouring mappings named n1 and n2."""
    c: dict[str, Ops] = {}
    # MLOCK_ONFAULT changes flags only: the pieces split off, keep their names, and merge back.
    c["lock_onfault_across_vmas"] = (mm(0, 4, n1) + mm(4, 4, n2) + lock(2, 4, onfault=True) + MAPS
                                     + unlock(2, 4) + MAPS)
    # mlock populates: the locked pieces are write-faulted (anon_vma), so after munlock they
    # no longer merge into their unfaulted neighbours; pieces faulted together share one anon_vma.
    c["lock_populate_blocks_merge"] = (mm(0, 4, n1) + mm(4, 4, n2) + lock(2, 4) + MAPS + unlock(2, 4)
                                       + MAPS + unlock(0, 8) + MAPS)
    # A hole stops mlock with ENOMEM before anything is populated: what was locked stays
    # unfaulted and merges back after munlock.
    c["lock_hole_enomem"] = (mm(0, 2, n1) + mm(3, 2, n2) + lock(0, 5) + MAPS + mm(2, 1, None) + MAPS
                             + unlock(0, 5) + MAPS)
    # A fork child has no VM_LOCKED: its pieces merge when touched by any flag change.
    c["lock_fork_child_unlocked"] = (mm(0, 2, n1) + mm(2, 2, n2) + lock(1, 2, onfault=True) + [{"op": "fork"}]
                                     + MAPS + [{"op": "maps", "pid": 1}]
                                     + [{**o, "pid": 1} for o in advise(0, 4, "random")]
                                     + advise(0, 4, "random") + MAPS + [{"op": "maps", "pid": 1}])
    # A private locked VMA that becomes writable is write-faulted by mprotect at once.
    c["lock_mprotect_populates"] = (mm(0, 2, n1) + mm(2, 2, n2) + prot(0, 4, "r") + lock(0, 4)
                                    + prot(1, 2, "rw") + prot(1, 2, "r") + MAPS
                                    + mm(8, 2, n1) + mm(10, 2, n2) + prot(8, 4, "r")
                                    + lock(8, 4, onfault=True) + prot(9, 2, "rw") + prot(9, 2, "r") + MAPS)
    # MREMAP_DONTUNMAP unlocks the whole source VMA (no split); growing a locked VMA populates.
    c["lock_mremap"] = (mm(0, 2, n1) + mm(2, 2, n2) + lock(0, 4) + move(1, 1, 16, "dontunmap") + MAPS
                        + lock(0, 1) + MAPS
                        + mm(32, 2, n1) + lock(32, 3) + [{"op": "mremap", "addr": 32 * P, "len": 2 * P,
                                                          "new_len": 4 * P, "flags": []}]
                        + mm(36, 1, n2) + unlock(32, 4) + prot(36, 1, "r") + prot(35, 1, "r") + MAPS)
    # madvise read-ahead hints split and merge like any flag change; names ride along.
    c["readahead_hints"] = (mm(0, 4, n1) + mm(4, 4, n2) + advise(1, 2, "sequential") + advise(4, 2, "random")
                            + MAPS + advise(2, 3, "random") + MAPS + advise(0, 8, "normal") + MAPS
                            + advise(0, 10, "sequential") + MAPS + advise(0, 8, "normal") + MAPS)
    # MAP_NORESERVE: VM_NORESERVE, so no VM_ACCOUNT at mmap nor when mprotect adds write.
    c["noreserve_account"] = (mm(0, 2, n1, noreserve=True) + mm(2, 2, n2) + MAPS
                              + mm(8, 2, n1, noreserve=True) + mm(10, 2, n2, noreserve=True) + MAPS
                              + mm(16, 2, n1, "r", noreserve=True) + prot(16, 2, "rw")
                              + mm(18, 2, n2, noreserve=True) + MAPS
                              + mm(24, 2, n1, "r") + mm(26, 2, n2, "r", noreserve=True) + prot(24, 4, "rw")
                              + prot(24, 4, "r") + MAPS)
    # MAP_POPULATE write-faults a private writable mapping: faulted, it no longer merges into an
    # unfaulted neighbour; read-only and PROT_NONE ones stay unfaulted.
    c["populate_faults"] = (mm(0, 2, n1) + mm(2, 2, None, populate=True) + op("name", 2, 2, name=n2) + MAPS
                            + mm(8, 2, n1) + mm(10, 2, None) + op("name", 10, 2, name=n2) + MAPS
                            + mm(16, 2, n1, "r") + mm(18, 2, None, "r", populate=True)
                            + op("name", 18, 2, name=n2) + prot(16, 4, "rw") + MAPS
                            + mm(24, 2, n1, "") + mm(26, 2, None, "", populate=True)
                            + op("name", 26, 2, name=n2) + MAPS)
    return c


def single_cases() -> dict[str, Ops]:
    """Cases about errors and corners, where names add nothing."""
    c: dict[str, Ops] = {}
    # PROT_NONE cannot be populated: mlock sets VM_LOCKED, then fails with ENOMEM.
    c["lock_protnone_enomem"] = (mm(0, 4, "a", "") + lock(1, 1) + MAPS + prot(1, 1, "rw") + MAPS
                                 + unlock(1, 1) + prot(1, 1, "") + MAPS + lock(0, 4, onfault=True) + MAPS)
    # Length and address rules: unaligned start rounds down, PAGE_ALIGN wraps to 0 (success,
    # nothing done), an end past 2**64 is EINVAL, a start in a hole ENOMEM.
    c["lock_args"] = (mm(0, 4, "a") + lock(1, 0) + op("mlock", 0, 0, addr=P + 100, len=10) + MAPS
                      + op("mlock", 3, 0, len=(1 << 64) - 1) + op("mlock", 3, 0, len=(1 << 64) - 2 * P) + MAPS
                      + op("munlock", 1, 0, addr=P + 5, len=(1 << 64) - 2 * P)
                      + op("munlock", 1, 0, addr=P + 5, len=P)
                      + MAPS + lock(5, 1) + unlock(6, 1) + lock(0, 1 << 40, onfault=True) + MAPS)
    # MADV_DONTNEED refuses locked VMAs (EINVAL), with or without MLOCK_ONFAULT.
    c["lock_dontneed_einval"] = (mm(0, 4, "a") + lock(2, 1) + advise(0, 4, "dontneed")
                                 + advise(0, 2, "dontneed")
                                 + lock(0, 1, onfault=True) + advise(0, 1, "dontneed") + MAPS)
    # Switching between mlock and mlock2(MLOCK_ONFAULT) changes VM_LOCKONFAULT.
    c["lock_modes"] = (mm(0, 4, "a") + lock(0, 4, onfault=True) + lock(1, 1) + MAPS + lock(2, 1, onfault=True)
                       + MAPS + lock(0, 4, onfault=True) + MAPS + lock(0, 4) + MAPS)
    # Private file mappings: mlock write-faults (COW) a writable one; a page past the end of
    # the file makes mlock fail (ENOMEM), MAP_POPULATE ignores it.
    c["lock_file"] = (mm(0, 3, None, "r", file="f0", pgoff=16383) + lock(0, 3) + MAPS
                      + mm(8, 3, None, "rw", file="f0", pgoff=16383, populate=True) + MAPS
                      + mm(16, 3, None, "rw", file="f0", pgoff=3) + lock(16, 2) + unlock(16, 2) + MAPS
                      + mm(24, 3, None, "rw", share="shared") + lock(25, 1) + unlock(25, 1)
                      + advise(24, 1, "random") + MAPS)
    return c


def main() -> None:
    here = Path(__file__).parent
    scripts: dict[str, Ops] = {}
    for variant, (n1, n2) in VARIANTS.items():
        for case, ops in named_cases(n1, n2).items():
            scripts[f"vmflags_{case}_{variant}"] = ops
    for case, ops in single_cases().items():
        scripts[f"vmflags_{case}"] = ops
    for stem, ops in scripts.items():
        (here / f"{stem}.jsonl").write_text("".join(json.dumps(o) + "\n" for o in ops))


if __name__ == "__main__":
    main()
