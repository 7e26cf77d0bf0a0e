"""fork(): kernel/fork.c dup_mmap, the operation the refcounted names were made for.

The kernel vm_area_dup's every VMA but VM_DONTCOPY ones, and the copy takes a reference on the
name (refcount) or copies the string (strdup). In the model a VMA is an immutable value, so
where the child's VMA equals the parent's (not locked, no anon_vma, a shared name) the child
holds the very same value, with its own name reference taken; only the VMAs that differ in the
child are built anew: a wiped or faulted VMA (new anon_vma), a locked one (VM_LOCKED cleared),
and under strdup every named one (its own copy of the string). Each holder of a value owns one
reference to its name, so refcounts are what the kernel's are, and the invariant checker
counts them per mm. Hot path (``anonvma bench fork`` times it): written for speed.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Optional

from anonvma.model.index import VmaIndex
from anonvma.model.pagetable import copy_page_range
from anonvma.model.vma import VM_DONTCOPY, VM_LOCKED_MASK, VM_WIPEONFORK, AnonVma, Vma

if TYPE_CHECKING:
    from anonvma.model.mm import Mm

#: VMAs with any of these flags are not copied as they are (skipped, wiped or unlocked).
_NOT_PLAIN = VM_DONTCOPY | VM_WIPEONFORK | VM_LOCKED_MASK


def dup_mmap(parent: "Mm") -> "Mm":
    """Build the child's address space from ``parent``'s.

    - VM_DONTCOPY VMAs are skipped (no VMA, no name reference in the child);
    - VM_WIPEONFORK VMAs keep their name but start with no anon_vma and no pages;
    - other faulted VMAs get a fresh anon_vma whose chain also links the parent's
      (anon_vma_fork), so the child's chains are never singular; their ptes are copied;
    - VM_LOCKED and VM_LOCKONFAULT are cleared in the child.
    """
    child = new_child(parent)
    chunks, ends, faulted = vm_area_dups(parent, child)
    install(child, parent, chunks, ends, faulted)
    return child


def new_child(parent: "Mm") -> "Mm":
    """The child's empty mm, sharing the parent's machine (generation, strategy, files)."""
    from anonvma.model.mm import Mm

    return Mm(max_map_count=parent.max_map_count, task_size=parent.task_size, machine=parent.machine)


def vm_area_dups(parent: "Mm", child: "Mm") -> tuple[list[list[Vma]], list[list[int]], list[Vma]]:
    """The child's VMAs, chunk by chunk as the parent's index holds them, with their end lists,
    and the parent VMAs whose pages the child copies. Takes the child's name references."""
    strategy = parent.strategy
    counters = child.name_counters
    # refcount: a name is shared by taking a reference, inline below while it stays below
    # REFCOUNT_MAX (freed objects have refcount 0 and take the slow path, which reports them)
    limit = strategy.refcount_max if strategy.kind == "refcount" else 0
    gets = 0
    out_chunks: list[list[Vma]] = []
    out_ends: list[list[int]] = []
    faulted: list[Vma] = []
    for chunk, ends in parent.index.chunks():
        special: Optional[dict[int, Optional[Vma]]] = None
        for v in chunk:
            if v.flags & _NOT_PLAIN or v.anon_vma is not None:
                if special is None:
                    special = {}
                special[id(v)] = None
                continue
            name = v.anon_name
            if name is not None:
                ref = name.refcount
                if 0 < ref < limit:
                    name.refcount = ref + 1
                    gets += 1
                else:
                    if special is None:
                        special = {}
                    special[id(v)] = None
        if special is None:
            out_chunks.append(chunk[:])
            out_ends.append(ends[:])
            continue
        rows: list[Vma] = []
        for v in chunk:
            if id(v) in special:
                copy = _vm_area_dup(v, child, faulted)
                if copy is not None:
                    rows.append(copy)
            else:
                rows.append(v)
        if rows:
            out_chunks.append(rows)
            out_ends.append([v.end for v in rows])
    counters.gets += gets
    return out_chunks, out_ends, faulted


def _vm_area_dup(v: Vma, child: "Mm", faulted: list[Vma]) -> Optional[Vma]:
    """The child's copy of a VMA that is not shared as it is (None: not copied)."""
    flags = v.flags
    if flags & VM_DONTCOPY:
        return None
    flags &= ~VM_LOCKED_MASK
    name = v.anon_name
    if name is not None:
        name = child.strategy.dup(name, child.name_counters)
    if v.anon_vma is None or flags & VM_WIPEONFORK:
        return Vma(v.start, v.end, flags, v.pgoff, v.file, None, 0, name, v.anon_pgoff)
    faulted.append(v)
    return Vma(v.start, v.end, flags, v.pgoff, v.file, AnonVma(), v.anon_chain + 1, name,
               v.anon_pgoff)


def install(child: "Mm", parent: "Mm", chunks: list[list[Vma]], ends: list[list[int]],
            faulted: list[Vma]) -> None:
    """Give the child its VMAs and copy the page tables of the faulted ones."""
    child.index = VmaIndex.from_chunks(chunks, ends)
    for v in faulted:
        copy_page_range(child, parent, v)
