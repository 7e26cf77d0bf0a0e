#!/usr/bin/env python3
"""Write the scripts that show each rule the stable updates after 6.1.176 and 6.12.95 changed
(rel_*.jsonl): the three MREMAP_DONTUNMAP fixes of mainline 7.3 (838bb60dc215, 597e4b9ab48a,
35b0fb391b0d) as 6.1.192 and 6.12.118 took them.

Run from the repo root; it writes each script once, as tests/scripts/NAME.jsonl. Record every
release's output with ``python tests/recordings.py record --linux RELEASE``, oldest first.
"""

from gen_generation_cases import MAPS, P, Ops, mmap, touch, write_cases

FAR = 256  # pages: a destination well away from the rest
DONTUNMAP = ["maymove", "fixed", "dontunmap"]


def dontunmap(page: int, pages: int, to: int) -> dict[str, object]:
    return {"op": "mremap", "addr": page * P, "len": pages * P, "new_len": pages * P, "flags": DONTUNMAP,
            "new_addr": to * P}


CASES: dict[str, Ops] = {
    # 838bb60dc215: an unfaulted copy next to its kept source; 6.1.192 merges with nothing there,
    # 6.12.118 and 7.3 only leave the source out (the copy still joins its other neighbour)
    "rel_dontunmap_copy_next_to_source": [
        mmap(0, 1), dontunmap(0, 1, 1), MAPS,
        {"op": "munmap", "addr": 0, "len": 4 * P},
        mmap(2, 1), mmap(0, 1), dontunmap(0, 1, 1), MAPS,
        {"op": "name", "addr": 0, "len": 3 * P, "name": "pool"}, MAPS],
    # 597e4b9ab48a: part of a locked VMA moved with DONTUNMAP: the source is split first, so only
    # the moved part loses its lock (visible as VMA boundaries)
    "rel_dontunmap_locked_part": [
        mmap(0, 4), {"op": "mlock", "addr": 0, "len": 4 * P}, dontunmap(1, 1, FAR), MAPS,
        {"op": "munlock", "addr": 0, "len": 4 * P}, MAPS],
    # 35b0fb391b0d: a faulted VMA moved away (keeping its page offset) and back with DONTUNMAP:
    # the emptied source gets the page offset of a fresh VMA, so a new neighbour merges with it
    "rel_dontunmap_source_pgoff": [
        mmap(FAR * 3, 1), touch(FAR * 3),
        {"op": "mremap", "addr": FAR * 3 * P, "len": P, "new_len": P, "flags": ["maymove", "fixed"],
         "new_addr": 0},
        dontunmap(0, 1, FAR), mmap(1, 1), MAPS],
}


def main() -> None:
    write_cases(CASES)


if __name__ == "__main__":
    main()
