"""mm/mprotect.c: mprotect, merging or splitting each VMA it changes (names ride along).

Hot path (``benchmarks/model_ops.py`` times the merge and the split back): written for speed,
with the kernel's structure.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Any, Callable, Optional

from anonvma.model.gup import populate_vma_page_range
from anonvma.model.merge import vma_modify_flags
from anonvma.model.mmap import vm_enough_memory, vm_prot
from anonvma.model.vma import (PAGE_MASK, PAGE_SHIFT, VM_ACCESS_FLAGS, VM_ACCOUNT, VM_NORESERVE,
                               VM_LOCKED, VM_SEALED, VM_SHARED, VM_WRITE, Vma)
from anonvma.model.kernel import rule

if TYPE_CHECKING:
    from anonvma.model.mm import Mm

U64 = (1 << 64) - 1
_NO_CHARGE = VM_ACCOUNT | VM_WRITE | VM_SHARED | VM_NORESERVE


def do_mprotect(mm: "Mm", addr: int, length: int, prot: str) -> None:
    """do_mprotect_pkey: change the protection of [addr, addr+length), VMA by VMA.

    :raises OSError: EINVAL (bad prot, unaligned), ENOMEM (start or a later part unmapped,
        overflow, map-count limit, commit), EACCES (a protection the mapping may not have).
        Work done on earlier VMAs stays.
    """
    new_prot = vm_prot(prot)
    if addr & ~PAGE_MASK:
        raise OSError(errno.EINVAL, f"address {addr:#x} is not page-aligned")
    if length == 0:
        return
    end = (addr + ((length + ~PAGE_MASK) & PAGE_MASK & U64)) & U64  # PAGE_ALIGN, inline
    if end <= addr:
        raise OSError(errno.ENOMEM, "mprotect range overflows")
    fixup_walk(mm, addr, end, new_prot, _mprotect_vma)


def _mprotect_vma(mm: "Mm", vma: Vma, prev: Optional[Vma], start: int, end: int, new_prot: int) -> Vma:
    """One VMA of do_mprotect_pkey's loop: the new flags, refused where VM_MAY* forbid them."""
    newflags = new_prot | (vma.flags & ~VM_ACCESS_FLAGS)
    if (newflags & ~(newflags >> 4)) & VM_ACCESS_FLAGS:  # each of rwx needs its VM_MAY*
        raise OSError(errno.EACCES, "mapping may not get that protection")
    return mprotect_fixup(mm, vma, prev, start, end, newflags)


#: Changes one VMA piece [start, end) with the walk's argument; returns the new prev.
Fixup = Callable[["Mm", Vma, Optional[Vma], int, int, Any], Vma]


def fixup_walk(mm: "Mm", start: int, end: int, arg: Any, fixup: Fixup) -> None:
    """The VMA walk of do_mprotect_pkey (and of mm/mlock.c apply_vma_lock_flags): ``fixup``
    each VMA piece of [start, end) in turn. Unlike madvise's walk, an unmapped start or a
    hole stops it with ENOMEM at once (pieces already changed stay changed)."""
    index = mm.index
    prev, vma = index.around(start)
    if vma is None or vma.start > start:
        raise OSError(errno.ENOMEM, f"{start:#x} is not mapped")
    if start > vma.start:
        prev = vma
    nstart = start
    while True:
        tmp = vma.end if vma.end < end else end
        prev = fixup(mm, vma, prev, nstart, tmp, arg)
        nstart = tmp if tmp > prev.end else prev.end
        if nstart >= end:
            return
        nxt = index.find_vma(prev.end)
        if nxt is None or nxt.start != nstart:
            raise OSError(errno.ENOMEM, f"{nstart:#x} is not mapped")
        vma = nxt


def mprotect_fixup(mm: "Mm", vma: Vma, prev: Optional[Vma], start: int, end: int,
                   newflags: int) -> Vma:
    """mprotect_fixup: charge commit, merge or split, then set the flags. Returns the new prev."""
    oldflags = vma.flags
    if oldflags & VM_SEALED:  # 6.10+ mseal, checked before the no-op test
        raise OSError(errno.EPERM, f"{start:#x} is sealed")
    if newflags == oldflags:
        return vma
    if newflags & VM_WRITE:
        if not oldflags & _NO_CHARGE:
            vm_enough_memory(mm, (end - start) >> PAGE_SHIFT)  # charged once, kept past write
            newflags |= VM_ACCOUNT
    else:
        newflags = mm.kernel.mprotect_unaccount(vma, newflags)
    changed = vma_modify_flags(mm, prev, vma, start, end, newflags)
    if oldflags & (VM_WRITE | VM_SHARED | VM_LOCKED) == VM_LOCKED and newflags & VM_WRITE:
        # a private locked VMA becoming writable is write-faulted at once ("trigger COW"), so
        # it gets an anon_vma; errors ignored (6.1 mm/mprotect.c 649-656, 6.12 687-694)
        try:
            populate_vma_page_range(mm, changed, start, end)
        except OSError:
            pass
        return mm.index.vma_lookup(start)  # type: ignore[return-value]
    return changed


@rule("mm/mprotect.c mprotect_fixup", "",
      "VM_ACCOUNT, once charged, stays when write is removed", "before 5.17")
def mprotect_keeps_account(vma: Vma, newflags: int) -> int:
    """Removing write never gives the commit back: the flags stay as computed."""
    return newflags


@rule("mm/mprotect.c mprotect_fixup",
      "lore bfef277462dd0dc75ce86e051bebc8b063f8d885.1696694712.git.lstoakes@gmail.com",
      "mm/mprotect: allow unfaulted VMAs to be unaccounted on mprotect()", "6.7")
def mprotect_unaccounts_unfaulted(vma: Vma, newflags: int) -> int:
    """A private anonymous VMA that was never faulted (no anon_vma) gives its commit back
    (loses VM_ACCOUNT) when mprotect removes write; it is charged again when write returns."""
    if not newflags & VM_WRITE and newflags & VM_ACCOUNT and vma.file is None and vma.anon_vma is None:
        return newflags & ~VM_ACCOUNT
    return newflags


#: The versions of this file's rules (:mod:`anonvma.model.kernel`), oldest first.
RULES = {"mprotect_unaccount": (mprotect_keeps_account, mprotect_unaccounts_unfaulted)}
