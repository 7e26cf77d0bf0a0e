#!/usr/bin/env python3
"""Write the scripts that provoke the two historic bugs of named anonymous memory (bug_*.jsonl).

Run from the repo root; it writes each script once, as tests/scripts/NAME.jsonl.
The kernels recorded there have both fixes, so what they print is what a fixed model must
print; tests/test_mutants.py switches each bug back on (anonvma.model.bugs) and shows that the
model then raises (use after free) or breaks an invariant (saturation) on the same script.
"""

from typing import Any

from gen_generation_cases import MAPS, P, Ops, mmap, mprotect, name, write_cases


def madvise(page: int, pages: int, advice: str, pid: int = 0) -> dict[str, Any]:
    op = {"op": "madvise", "addr": page * P, "len": pages * P, "advice": advice}
    return {**op, "pid": pid} if pid else op


CASES: dict[str, Ops] = {
    # 942341dcc574 (use after free): two neighbours hold equal names in different objects and
    # differ only in VM_DONTCOPY; madvise gives the second one the first one's flags, so the
    # merge frees it and its name (its only reference) before madvise_update_vma compares that
    # name with the survivor's. The fix holds a reference on the name across the update.
    "bug_942341dcc574_merge_frees_the_named_vma": [
        mmap(0, 2), madvise(0, 1, "dontfork"), name(0, 1, "x"), name(1, 1, "x"), MAPS,
        madvise(1, 1, "dontfork"), MAPS],
    # the same bug as random scripts first found it under the refcount strategy (random_script
    # seed 647, 200 ops, shrunk): after the parent exits, the child's VMAs hold the only
    # references, and keeponfork merges a VMA whose name object differs from its neighbour's
    "bug_942341dcc574_after_fork_and_exit": [
        mmap(6, 9), name(9, 10, "heap"), madvise(8, 3, "wipeonfork"), name(0, 11, "heap"),
        {"op": "fork"}, {"op": "exit"}, madvise(6, 8, "keeponfork", pid=1), {"op": "maps", "pid": 1}],
    # 96403e11283d (refcount saturation): every split shares the name object, and so does fork;
    # with REFCOUNT_MAX lowered to 3 (tests/test_mutants.py) the model must give the fourth
    # holder a copy. Kernels print the same maps either way.
    "bug_96403e11283d_saturation": [
        mmap(0, 8), name(0, 8, "x"), mprotect(1, 1, "r"), mprotect(3, 1, "r"), mprotect(5, 1, "r"),
        MAPS, {"op": "fork"}, {"op": "maps", "pid": 1}, mprotect(1, 1, "rw"), MAPS],
}


def main() -> None:
    write_cases(CASES)


if __name__ == "__main__":
    main()
