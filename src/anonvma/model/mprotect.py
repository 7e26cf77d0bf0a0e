"""mm/mprotect.c: mprotect, merging or splitting each VMA it changes (names ride along).

Hot path (``benchmarks/model_ops.py`` times the merge and the split back): written for speed,
with the kernel's structure.
"""

from __future__ import annotations

import errno
from typing import TYPE_CHECKING, Optional

from anonvma.model.merge import vma_modify
from anonvma.model.mmap import page_align, vm_enough_memory, vm_prot
from anonvma.model.vma import (PAGE_MASK, PAGE_SHIFT, VM_ACCESS_FLAGS, VM_ACCOUNT, VM_NORESERVE,
                               VM_SHARED, VM_WRITE, Vma)

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
    end = (addr + page_align(length)) & U64
    if end <= addr:
        raise OSError(errno.ENOMEM, "mprotect range overflows")
    index = mm.index
    prev, vma = index.around(addr)
    if vma is None or vma.start > addr:
        raise OSError(errno.ENOMEM, f"{addr:#x} is not mapped")
    if addr > vma.start:
        prev = vma
    nstart = addr
    while True:
        newflags = new_prot | (vma.flags & ~VM_ACCESS_FLAGS)
        if (newflags & ~(newflags >> 4)) & VM_ACCESS_FLAGS:  # each of rwx needs its VM_MAY*
            raise OSError(errno.EACCES, "mapping may not get that protection")
        tmp = vma.end if vma.end < end else end
        prev = mprotect_fixup(mm, vma, prev, nstart, tmp, newflags)
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
    if newflags == oldflags:
        return vma
    if newflags & VM_WRITE:
        if not oldflags & _NO_CHARGE:
            vm_enough_memory(mm, (end - start) >> PAGE_SHIFT)  # charged once, kept past write
            newflags |= VM_ACCOUNT
    else:
        newflags = mm.kernel.mprotect_unaccount(vma, newflags)
    return vma_modify(mm, prev, vma, start, end, newflags, vma.anon_name, False)
