"""fork(): kernel/fork.c dup_mmap, the operation the refcounted names were made for.

Every VMA but VM_DONTCOPY ones is copied eagerly, one by one, as the kernel does. The child's
copy shares the parent's name object (refcount) or gets its own copy of the string (strdup).
Written for speed on purpose: this loop is what ``anonvma bench fork`` times.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from anonvma.model.index import VmaIndex
from anonvma.model.pagetable import copy_page_range
from anonvma.model.vma import VM_DONTCOPY, VM_LOCKED, VM_LOCKONFAULT, VM_WIPEONFORK, AnonVma, Vma

if TYPE_CHECKING:
    from anonvma.model.mm import Mm

_NOT_PLAIN = VM_DONTCOPY | VM_WIPEONFORK | VM_LOCKED | VM_LOCKONFAULT


def dup_mmap(parent: "Mm") -> "Mm":
    """Build the child's address space from ``parent``'s.

    - VM_DONTCOPY VMAs are skipped (no VMA, no name reference in the child);
    - VM_WIPEONFORK VMAs keep their name but start with no anon_vma and no pages;
    - other VMAs get a fresh anon_vma whose chain also links the parent's (anon_vma_fork),
      so the child's chains are never singular; their ptes are copied (copy_page_range).
    """
    child = new_child(parent)
    copies, named, faulted = vm_area_dups(parent)
    parent.strategy.dup_vmas(named, child.name_counters)  # dup_anon_vma_name, in one pass
    install(child, parent, copies, faulted)
    return child


def new_child(parent: "Mm") -> "Mm":
    """The child's empty mm, sharing the parent's machine (strategy, files)."""
    from anonvma.model.mm import Mm

    return Mm(max_map_count=parent.max_map_count, task_size=parent.task_size, machine=parent.machine)


def vm_area_dups(parent: "Mm") -> tuple[list[Vma], list[Vma], list[tuple[Vma, Vma]]]:
    """vm_area_dup of every VMA the child gets: (copies in order, the named ones, whose
    ``anon_name`` is still the parent's object, and (copy, original) pairs with pages to copy)."""
    new = Vma.__new__
    out: list[Vma] = []
    append = out.append
    named: list[Vma] = []
    named_append = named.append
    faulted: list[tuple[Vma, Vma]] = []
    for v in parent.index:
        flags = v.flags
        if flags & _NOT_PLAIN:
            if flags & VM_DONTCOPY:
                continue
            flags &= ~(VM_LOCKED | VM_LOCKONFAULT)
        c = new(Vma)
        c.start = v.start
        c.end = v.end
        c.flags = flags
        c.pgoff = v.pgoff
        c.file = v.file
        c.anon_name = name = v.anon_name
        if name is not None:
            named_append(c)
        if v.anon_vma is None or flags & VM_WIPEONFORK:
            c.anon_vma = None
            c.anon_chain = 0
        else:
            c.anon_vma = AnonVma()
            c.anon_chain = v.anon_chain + 1
            faulted.append((c, v))
        append(c)
    return out, named, faulted


def install(child: "Mm", parent: "Mm", copies: list[Vma], faulted: list[tuple[Vma, Vma]]) -> None:
    """Give the child its VMAs and copy the page tables of the faulted ones."""
    child.index = VmaIndex(copies)
    for _, v in faulted:
        copy_page_range(child, parent, v)
