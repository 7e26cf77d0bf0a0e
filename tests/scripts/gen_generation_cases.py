#!/usr/bin/env python3
"""Write the scripts that show each difference between Linux 6.1 and 6.12 (gen_d*.jsonl).

Run from the repo root; it writes each script once, as tests/scripts/NAME.jsonl.
Record every release's output with `python tests/recordings.py record --linux RELEASE`, oldest first.
"""

import json
from pathlib import Path
from typing import Any

P = 4096
#: larger than the oracle guest's RAM + swap (about 485 MiB), so the commit check fails
BIG = 1 << 30
Ops = list[dict[str, Any]]


def mmap(page: int, pages: int, prot: str = "rw", **extra: Any) -> dict[str, Any]:
    return {"op": "mmap", "addr": page * P, "len": pages * P, "prot": prot, **extra}


def name(page: int, pages: int, value: Any) -> dict[str, Any]:
    return {"op": "name", "addr": page * P, "len": pages * P, "name": value}


def mprotect(page: int, pages: int, prot: str) -> dict[str, Any]:
    return {"op": "mprotect", "addr": page * P, "len": pages * P, "prot": prot}


def touch(page: int) -> dict[str, Any]:
    return {"op": "touch", "addr": page * P}


MAPS: dict[str, Any] = {"op": "maps"}

CASES: dict[str, Ops] = {
    # D1 (d09e8ca6cb93): shared anonymous memory can be named, merges need equal names,
    # names ride along mremap, and a hole after it is ENOMEM instead of EBADF
    "gen_d1_shmem_name_then_mprotect": [
        mmap(0, 3, share="shared"), name(1, 1, "x"), mprotect(1, 1, "r"), mprotect(1, 1, "rw"), MAPS,
        name(1, 1, None), MAPS],
    "gen_d1_shmem_name_moves": [
        mmap(0, 2, share="shared"), name(0, 2, "x"),
        {"op": "mremap", "addr": 0, "len": 2 * P, "new_len": 2 * P, "flags": ["maymove", "fixed"],
         "new_addr": 10 * P}, MAPS],
    "gen_d1_shmem_then_hole": [mmap(0, 1, share="shared"), name(0, 2, "x"), MAPS],
    # D2 (cacded5e42b9): which neighbour a new mapping extends
    "gen_d2_unfaulted_prev_faulted_next": [
        mmap(20, 1), mmap(22, 1), touch(22), mmap(21, 1), MAPS, name(20, 3, "arena"), MAPS],
    "gen_d2_map_fixed_over_faulted": [mmap(0, 1), mmap(2, 2), touch(3), mmap(1, 2), MAPS],
    "gen_d2_file_between": [
        mmap(0, 1, file="f0", pgoff=0), mmap(2, 1, file="f0", pgoff=2), touch(2),
        mmap(1, 1, file="f0", pgoff=1), MAPS],
    # D3 (mprotect unaccounts unfaulted VMAs): VM_ACCOUNT decides merges both ways
    "gen_d3_unaccount_merges": [mmap(0, 2, "r"), mmap(2, 2), mprotect(2, 2, "r"), MAPS,
                                name(0, 4, "heap"), MAPS],
    "gen_d3_protnone_merges": [mmap(0, 2, ""), mmap(2, 2), mprotect(2, 2, ""), MAPS],
    "gen_d3_faulted_keeps_account": [mmap(1, 1), touch(1), mprotect(1, 1, "r"), mmap(0, 1),
                                     mprotect(0, 1, "r"), MAPS],
    "gen_d3_wiped_child": [mmap(0, 2), touch(0), mmap(2, 2, "r"),
                           {"op": "madvise", "addr": 0, "len": 4 * P, "advice": "wipeonfork"},
                           {"op": "fork"}, {"op": "mprotect", "pid": 1, "addr": 0, "len": 2 * P,
                                            "prot": "r"}, {"op": "maps", "pid": 1}],
    # D4 (f8d112a4e657): a MAP_FIXED mapping that fails its commit check
    "gen_d4_failed_map_fixed": [mmap(0, 4), name(0, 4, "kept?"),
                                {"op": "mmap", "addr": 2 * P, "len": BIG, "prot": "rw"}, MAPS],
}


def write_cases(cases: dict[str, Ops]) -> None:
    """Write each case as tests/scripts/<stem>.jsonl (record every release's output with
    tests/recordings.py afterwards)."""
    here = Path(__file__).parent
    for stem, ops in cases.items():
        (here / f"{stem}.jsonl").write_text("".join(json.dumps(o) + "\n" for o in ops))


def main() -> None:
    write_cases(CASES)


if __name__ == "__main__":
    main()
