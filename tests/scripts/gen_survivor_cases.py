#!/usr/bin/env python3
"""Write the scripts that pin down what mutation testing found unpinned in mremap (surv_*.jsonl).

Run from the repo root; it writes each script once, as tests/scripts/NAME.jsonl.
Each is recorded on the real kernel of its directory; tests/test_model_oracle_examples.py then
holds the model to it. Each script names the mutant of model/mremap.py it kills.
"""

from typing import Any, Optional

from gen_generation_cases import MAPS, P, Ops, mmap, mprotect, touch, write_cases


def mv(src: int, dst: int, *extra: str, pages: int = 1) -> dict[str, Any]:
    return {"op": "mremap", "addr": src * P, "len": pages * P, "new_len": pages * P,
            "flags": ["maymove", "fixed", *extra], "new_addr": dst * P}


def in_child(op: dict[str, Any]) -> dict[str, Any]:
    return {**op, "pid": 1}


def remap(page: int, length: int, new_len: int, *flags: str, new_addr: Optional[int] = None,
          extra: int = 0) -> dict[str, Any]:
    op = {"op": "mremap", "addr": page * P + extra, "len": length, "new_len": new_len, "flags": list(flags)}
    return op if new_addr is None else {**op, "new_addr": new_addr}


#: offsets far apart in the arena, for mappings that grow by hundreds of megabytes
FAR, FARTHER, FARTHEST = 0x40000, 0x80000, 0x100000


CASES: dict[str, Ops] = {
    # copy_vma passes the moved VMA's anon_vma to vma_merge: two faulted VMAs with different
    # anon_vmas stay apart even where their page offsets line up (a move may not borrow the
    # NULL-anon_vma shortcut)
    "surv_move_keeps_faulted_vmas_with_different_anon_vmas_apart": [
        mmap(1, 1), touch(1), mv(1, 20), mmap(0, 1), touch(0), mv(20, 1), MAPS],
    # copy_vma passes the moved VMA's file to vma_merge: a file mapping moved next to anonymous
    # memory whose page offsets line up does not merge into it
    "surv_moved_file_mapping_does_not_merge_into_anonymous_memory": [
        mmap(0, 1), mmap(20, 1, file="f0", pgoff=0x4000001), mv(20, 1), MAPS],
    # move_vma with MREMAP_DONTUNMAP unlinks the anon_vma of a source moved whole: a fork child's
    # copy of it then has none, so it merges with an unfaulted neighbour
    "surv_dontunmap_of_a_whole_vma_unlinks_its_anon_vma": [
        mmap(0, 1), touch(0), mmap(1, 1, "r"), mv(0, 10, "dontunmap"), {"op": "fork"},
        in_child(mprotect(1, 1, "rw")), {"op": "maps", "pid": 1}, mprotect(1, 1, "rw"), MAPS],
    # ... but not of a source moved in part: its child copy keeps a forked anon_vma and refuses
    # the merge that needs the NULL-anon_vma shortcut
    "surv_dontunmap_of_part_of_a_vma_keeps_its_anon_vma": [
        mmap(0, 2), touch(0), mmap(2, 1, "r"), mv(1, 10, "dontunmap"), {"op": "fork"},
        in_child(mprotect(2, 1, "rw")), {"op": "maps", "pid": 1}],
    # every refusal of mremap's argument and VMA checks, in the kernel's order
    "surv_mremap_refusals": [
        mmap(0, 1),
        remap(0, P, P, "fixed", new_addr=9 * P),                      # EINVAL: fixed needs maymove
        remap(0, P, 2 * P, "maymove", "dontunmap", new_addr=9 * P),   # EINVAL: dontunmap resizing
        remap(0, P, P, extra=1),                                      # EINVAL: unaligned
        remap(0, P, 0),                                               # EINVAL: new length 0
        remap(5, P, P),                                               # EFAULT: nothing mapped there
        remap(0, 3 * P, 3 * P),                                       # OK: same size, nothing checked
        remap(0, 0, P, "maymove"),                                    # EINVAL: private, old_len 0
        remap(0, 2 * P, 3 * P, "maymove"),                            # EFAULT: spans past the VMA
        mmap(1, 1, "r"), remap(0, P, 2 * P),                          # ENOMEM: blocked, no maymove
        remap(0, P, P, "maymove", "fixed", new_addr=9 * P + 8),       # EINVAL: new address unaligned
        mmap(20, 2), remap(21, P, 2 * P, "maymove", "fixed", new_addr=20 * P),  # EINVAL: overlap
        remap(0, P, 2 * P, "maymove", "fixed", new_addr=0x3FBFFFF000),  # EINVAL: above TASK_SIZE
        remap(0, P, P, "dontunmap", new_addr=9 * P),                   # EINVAL: dontunmap, no maymove
        {"op": "mprotect", "addr": 0, "len": (1 << 64) - 1, "prot": "r"},  # ENOMEM: length rounds to 0
        MAPS],
    # growing in place: vma_merge gets the VMA's own anon_vma and file; only VM_ACCOUNT mappings
    # are charged, only the growth; a locked VMA's new part is populated, errors ignored
    "surv_mremap_grows_in_place": [
        mmap(0, 1), touch(0), {"op": "fork"}, in_child(remap(0, P, 2 * P)), {"op": "maps", "pid": 1},
        mmap(10, 1, file="f0", pgoff=0), remap(10, P, 2 * P),
        mmap(20, 1, "r"), remap(20, P, 130000 * P),
        mmap(FAR, 100000), remap(FAR, 100000 * P, 100001 * P),
        mmap(FARTHER, 1, ""), {"op": "mlock", "addr": FARTHER * P, "len": P}, remap(FARTHER, P, 2 * P),
        mmap(FARTHEST, 1), {"op": "mlock", "addr": FARTHEST * P, "len": P}, remap(FARTHEST, P, 2 * P),
        MAPS],
    # mremap_to shrinks the source before moving it; a DONTUNMAP move right after its own VMA
    # merges the copy into the source itself (copy_vma then moves "the merged VMA")
    "surv_mremap_fixed_shrink_and_move_next_to_itself": [
        mmap(0, 4), remap(0, 4 * P, 2 * P, "maymove", "fixed", new_addr=20 * P),
        mmap(40, 1), remap(40, P, P, "maymove", "fixed", "dontunmap", new_addr=41 * P),
        mmap(60, 1), remap(60, P, P, "maymove", "fixed", new_addr=61 * P),
        remap(20, P, 1 << 60), MAPS],
    # find_mergeable_anon_vma: a first write fault reuses the anon_vma of a neighbour that
    # differs only in its access flags (anon_vma_compatible), so the two merge later
    "surv_first_fault_shares_the_anon_vma_of_a_neighbour_differing_in_prot": [
        mmap(0, 1), mmap(1, 1, "rwx"), touch(1), touch(0), mprotect(1, 1, "rw"), MAPS],
    # a merge whose survivor has no anon_vma takes the absorbed VMA's: a move filling the hole
    # between an unfaulted and a faulted VMA; the fork child's copy then refuses the
    # NULL-anon_vma shortcut to a new neighbour
    "surv_merge_takes_the_absorbed_anon_vma": [
        mmap(0, 1), mmap(2, 1), touch(2), mmap(10, 1), mv(10, 1), MAPS, {"op": "fork"},
        in_child(mmap(3, 1)), {"op": "maps", "pid": 1}],
    # vma_merge case 4: mprotect of a VMA's tail that joins the next VMA moves the boundary;
    # the grown next VMA's file offset goes down by the pages it gained
    "surv_mprotect_tail_joins_the_next_file_vma": [
        mmap(0, 2, share="shared", file="f0", pgoff=0), mmap(2, 1, "r", share="shared", file="f0", pgoff=2),
        mprotect(1, 1, "r"), MAPS, mmap(5, 1, "r", share="shared", file="f1", pgoff=5),
        mmap(6, 2, share="shared", file="f1", pgoff=6), mprotect(6, 1, "r"), MAPS],
    # dup_mmap copies a written (COW) private file mapping with its file, and the child's copy
    # can be forked again (its anon_vma chain grows by one per generation)
    "surv_fork_copies_a_written_file_mapping_twice": [
        mmap(0, 1, file="f0", pgoff=0), touch(0), {"op": "fork"}, {"op": "maps", "pid": 1},
        {"op": "fork", "pid": 1}, {"op": "maps", "pid": 2}],
}


def main() -> None:
    write_cases(CASES)


if __name__ == "__main__":
    main()
